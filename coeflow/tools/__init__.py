"""The command line (``coeflow``) and what runs the product on one machine: the embedded broker,
the local outbox and sink, the demo, workflow files, worker processes for tests. It may import
every other part; nothing but the benchmark and the tests imports it."""
