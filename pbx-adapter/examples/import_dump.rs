fn main() {
    let dir = std::env::args().nth(1).unwrap();
    let import = pbx_adapter::import::asterisk::import_dir(std::path::Path::new(&dir)).unwrap();
    println!("{:#?}", import);
    println!("{}", import.report());
    println!("{}", import.to_toml());
}
