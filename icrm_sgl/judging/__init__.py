"""The judging core: ``ICRM``, its settings, pairs in both orders, ranking, expected values."""
