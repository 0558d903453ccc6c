"""Quick replies (快捷话术): scripts by scene and member tag, rendered for a member."""
