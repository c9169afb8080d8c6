"""The shop's numbers for staff (/insights): what the DMs asked, how fast they were answered,
what they led to, what was missed. Over the staff and shop packages: it reads the fit of
pieces (shop) for the sizes asked and not in stock.

Others may import `report.build_insights`, `report.Insights`, `report.Period` and
`report.tables` (the CSV export of every table)."""
