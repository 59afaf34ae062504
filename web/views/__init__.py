"""The web app's views: thin. Parse a form, call a service or a selector, render.

Every view is team-scoped (another team's object is a 404 page) and every write checks
the requester's role in the object's team (a viewer gets a 403 page, and is never
shown the control in the first place).
"""
