"""One handler per job kind (write, image, video, deliver) and what happens when a job gives up."""
