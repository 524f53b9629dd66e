"""What both gRPC servers share: TLS, bearer-token auth, limits, metrics, request logs,
health, reflection and graceful shutdown. The services add only their servicers."""
