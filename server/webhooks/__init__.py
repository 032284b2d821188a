"""Product webhooks: an event whose name starts with a webhook's prefix becomes an HTTP request."""
