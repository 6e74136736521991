"""The resident agent: the server and its accepting threads, socket activation, the front's
client, and their wire format."""
