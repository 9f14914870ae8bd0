# Raw usage rows and rollups arrive with the ingest issue; the app exists so URLs and tasks
# have a home from the start.
