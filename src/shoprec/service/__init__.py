"""The live service: recommendations over HTTP, durable events that change the next answer at once,
a storefront page. ``create_app(settings)`` builds the FastAPI app; ``shoprec serve`` runs it."""
