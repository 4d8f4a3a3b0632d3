"""The embedded engine: llama.cpp in this process, running the judging programs."""
