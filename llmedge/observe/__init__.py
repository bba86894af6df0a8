"""
Observing requests: what happened to each (the exchange record), counted
(metrics), told (the JSON access log), and linked across services (trace
context).
"""
