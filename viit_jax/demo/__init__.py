"""The demo world's analysis, kept apart from the trainer: the pipeline's phase plan (`phases`), the
report with its claims (`report`, `analysis`), and the research probes (`perception`,
`caption_ceiling`). Nothing under viit_jax/ outside this package imports it but the pipeline.
"""
