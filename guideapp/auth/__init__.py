"""Who is calling: login, tokens, and the policy deciding what they may see and change."""
