"""``python -m referral_sync`` runs the command line."""

from referral_sync.cli import main

main()
