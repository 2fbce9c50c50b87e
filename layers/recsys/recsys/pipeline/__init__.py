"""The pipeline's steps as the state machine sees them: request/response models and one function per step."""
