"""The web app (`winback serve`): tracked links, unsubscribe, surveys, the dashboard and the REST API."""
