"""The resident agent: the server, the front's client, their wire format and socket path."""
