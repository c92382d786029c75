"""The only code that talks to Redis or the database."""
