"""The read side shared by every channel: queries of the read models that HTTP, the WebSocket
hub, feeds (and later mail and webhooks) all ask, beside the access facts and visibility
rules that filter them. Each module names the read model whose tables it reads."""
