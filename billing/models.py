# Plans are data (`billing/plans.py`); Stripe payments and webhook events arrive with the
# billing issue.
