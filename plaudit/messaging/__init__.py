"""Outbound messaging: review requests by email, SMS and web push, and deliverability."""
