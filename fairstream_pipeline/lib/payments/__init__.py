"""Payment runs: bank details, the SEPA credit-transfer file, the bank's status reports."""
