"""The Jenkins source: a home's jobs and runs on disk -> run facts."""
