"""Textopia on other systems' runners: :mod:`textopia.integrations.ray_batch` (a file of ideas on a
Ray cluster). Each module imports its system only inside its functions, so nothing here needs it
installed until it is used."""
