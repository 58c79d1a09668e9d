"""What a command asks for: stories, scene actions, the library, quotas, server settings, progress."""
