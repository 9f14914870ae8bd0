"""The local HTTP API and page on 127.0.0.1:19898 (`clawtrace serve`)."""
