"""The loopback webhook receiver lives in ``intake_cli.receiver`` (the demo uses it too)."""

from intake_cli.receiver import Received, Receiver, webhook_receiver

__all__ = ["Received", "Receiver", "webhook_receiver"]
