"""Optical flow: OpenCV TV-L1, batched torch TV-L1, Farneback, codec motion vectors."""
