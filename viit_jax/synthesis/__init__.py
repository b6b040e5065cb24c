"""Video instruction data synthesis: templates, back-ends, validation, dataset units."""
