# The sender's API stores nothing of its own: usage rows belong to `analytics` (a later issue).
