"""What a user writes and gets back: spiders, requests, responses, items."""
