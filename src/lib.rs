pub mod envfile;
pub mod names;
pub mod secrets;
pub mod compose;
