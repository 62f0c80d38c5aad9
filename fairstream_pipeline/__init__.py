"""FairStream's user-centric royalty payout pipeline."""
