"""Task inbox: HQ campaigns, store tasks, SOP rules, the marketing calendar, the scheduler."""
