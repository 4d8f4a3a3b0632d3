"""Input and output plumbing: files, records, conversations, argument checks, judgements."""
