"""What every gistsync service shares: settings, message contracts, the RabbitMQ layer,
the operations HTTP server and logging."""
