"""Running a lesson's topology as local processes."""
