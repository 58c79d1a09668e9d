"""xAI's API over httpx: text, pictures and clips."""
