"""Helpers shared by test packages (browser, inside-a-server runners); imported, never collected as tests."""
