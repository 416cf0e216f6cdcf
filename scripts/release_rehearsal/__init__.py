"""The release rehearsal (scripts/release-rehearsal): a HACS user's install, proved end to end."""
