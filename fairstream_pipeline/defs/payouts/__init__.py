"""Payouts: counted streams, pools, payee earnings (UC beside PR), statements and money checks."""
