"""The release stage: the result leaves the lake - the dataset export with its card, the Hub upload, and the
OpenAI-compatible server that serves the merged model or the adapter."""
