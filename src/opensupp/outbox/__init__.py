"""The outbox: what leaves the process (hook deliveries, later mail), written in the
transaction of the change that causes it and sent after commit by the worker."""
