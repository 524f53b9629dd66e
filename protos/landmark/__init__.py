"""The contract both sides share: the generated ``landmark.v1`` stubs, the codec for their
arrays (``landmark.wire``) and how a client reaches a service (``landmark.connection``).

The SDK (``landmark_client``) and the servers import this package; neither imports the other.
"""

# What a service prints on stdout once it listens, followed by host:port: the one line of
# the process contract between a service and whoever started it (landmark_client.local).
READY_PREFIX = "LISTENING "
