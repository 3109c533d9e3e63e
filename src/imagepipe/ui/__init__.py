"""What the user sees: the output lines and the table renderer."""
