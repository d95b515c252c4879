"""The way out to Compass: the outbox's events through the rate budget and the transport, and the
GraphQL administration of event sources."""
