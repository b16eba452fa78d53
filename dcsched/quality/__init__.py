"""Service quality: curve families and the artifacts the simulator reads (MODEL.md section 7)."""
