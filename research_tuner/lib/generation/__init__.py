"""What the teacher writes: research questions per subdomain and a research approach per kept question (the ways of
asking, their prompts and response models, and the gates inside the approach retry loop, since a rejected part is
asked again). Imports `shared` and `teacher` only."""
