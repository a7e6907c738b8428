"""Insights: why customers leave (reasons), what feedback keeps saying (themes), who they are (personas)."""
