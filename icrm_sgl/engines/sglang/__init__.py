"""The sglang engine: a server or router over HTTP (launched or connected to) and the
frontend adapter that runs the judging programs on any sglang backend."""
