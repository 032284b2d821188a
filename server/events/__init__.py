"""Events after they are stored: the broker that fans them out live, and the feeds subscribers hold."""
