"""The chat agent: OpenAI chat completions with tool calling over the todo data functions.

This folder is named `agents` by the image contract. The OpenAI *Agents* SDK also imports as `agents`; we do
not use (or install) it, so nothing is shadowed - tests assert that `agents` resolves to this folder.
"""
