"""Web: the Starlette app (pages, feeds, subscribe/unsubscribe) and its safety limits."""
