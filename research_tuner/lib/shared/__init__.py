"""What every stage shares: the taxonomy, the 7 sections, ids and seeds, the student's chat framing, model
loading and batched inference, the hardware plan, and the row schemas of the assets' tables."""
