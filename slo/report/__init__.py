"""SLO reports over calendar periods (`mcp-slo report`): attainment, budget, the days and
weeks of a month, quarter, ISO week, year or free range in the report's time zone.
`periods` holds the calendar arithmetic the rest is built on."""
